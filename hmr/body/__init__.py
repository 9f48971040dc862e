"""hmr.body"""
