"""hmr.vis"""
