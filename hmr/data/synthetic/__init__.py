"""Synthetic labelled data rendered from the open body and hand models (the embedded default dataset).

- :mod:`pose_prior`: anatomical body/hand pose priors; :mod:`scene`: cameras and framing;
  :mod:`appearance`: backgrounds, lights, colours, occluders; :mod:`samples`: render one labelled sample;
  :mod:`writers`: SPIN/CLIFF npz (bodies) and FreiHAND layout (hands); :mod:`generator`: shards, workers,
  resume, summary; :mod:`contact_sheet`: a PNG of samples with their keypoints drawn on.
"""
from hmr.data.synthetic.generator import DEFAULT_ROOT, SetSpec, generate_set
from hmr.data.synthetic.samples import BodySampler, HandSampler, Sample, SceneOptions

__all__ = ["DEFAULT_ROOT", "SetSpec", "generate_set", "BodySampler", "HandSampler", "Sample", "SceneOptions"]
