"""hmr.rotations"""
