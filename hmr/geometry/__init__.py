"""hmr.geometry: cameras (projection, CLIFF bbox info, crop ↔ full-frame camera) and Procrustes alignment."""
from hmr.geometry.camera import (bbox_info, camera_matrix, crop_to_full_camera, default_focal,
                                 full_to_crop_camera, perspective_projection)
from hmr.geometry.procrustes import (align_similarity, align_similarity_np, similarity_transform,
                                     similarity_transform_np)

__all__ = [
    "align_similarity", "align_similarity_np", "bbox_info", "camera_matrix", "crop_to_full_camera",
    "default_focal", "full_to_crop_camera", "perspective_projection", "similarity_transform",
    "similarity_transform_np",
]
