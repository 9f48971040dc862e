"""hmr.fitting: keypoint-guided fitting of the body/hand model to 2D keypoints in the full-frame camera,
initialised from the regressor's prediction (SMPLify/EFT style; see docs/architecture.md, "Keypoint fitting").

Public API: :class:`FitConfig`, :class:`FitParams`, :class:`FitResult`, :func:`fit_to_keypoints`,
:func:`fit_sequence` (video), :func:`fit_gt_ceiling`, :func:`project_keypoints`, :func:`left_right_check`, :class:`KeypointModel`,
:func:`synthetic_pose_gmm`.
"""
from hmr.fitting.fit import (FitResult, fit_gt_ceiling, fit_sequence, fit_to_keypoints, left_right_check,
                             project_keypoints)
from hmr.fitting.keypoint_model import KeypointModel, resolve_keypoint_set
from hmr.fitting.objective import FitConfig
from hmr.fitting.params import FitParams
from hmr.fitting.pose_prior import PoseGMM, synthetic_pose_gmm

__all__ = ["FitConfig", "FitParams", "FitResult", "KeypointModel", "PoseGMM", "fit_gt_ceiling", "fit_sequence",
           "fit_to_keypoints", "left_right_check", "project_keypoints", "resolve_keypoint_set", "synthetic_pose_gmm"]
