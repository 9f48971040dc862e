"""hmr.geometry"""
