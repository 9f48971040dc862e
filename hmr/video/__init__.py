"""Video: identities across frames (``tracking``), temporal smoothing on SO(3) (``smoothing``), per-track exports
(``export_gltf``: animated skinned .glb; ``export_motion``: .bvh and smplx-named .npz) and video metrics
(``metrics``: acceleration error, CLEAR-MOT counts). The demo uses them through :mod:`hmr.demo.video_tracks`."""
