"""hmr.data"""
