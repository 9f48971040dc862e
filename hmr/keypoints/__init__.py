"""2D keypoints on real photos with MediaPipe's networks (converted to torch by :mod:`hmr.models.mediapipe`).

- :class:`BlazePose`: every person -> 33 landmarks (+ visibility, presence, world landmarks, box)
- :class:`MediaPipeHands`: every hand -> 21 landmarks (FreiHAND order) + handedness (unmirrored photos)
- :func:`map_body` / :func:`map_hand`: to the project's joint sets (:mod:`hmr.body.joint_sets`)
"""
from hmr.keypoints.blazepose import POSE_LANDMARK_NAMES, BlazePose, PoseResult
from hmr.keypoints.hands import HAND_LANDMARK_NAMES, HandResult, MediaPipeHands
from hmr.keypoints.mapping import BODY_SETS, HAND_SETS, MappedKeypoints, body_sources, map_body, map_hand
from hmr.keypoints.roi import RotatedRect

__all__ = ["POSE_LANDMARK_NAMES", "BlazePose", "PoseResult", "HAND_LANDMARK_NAMES", "HandResult", "MediaPipeHands",
           "BODY_SETS", "HAND_SETS", "MappedKeypoints", "body_sources", "map_body", "map_hand", "RotatedRect"]
