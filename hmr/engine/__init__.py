"""hmr.engine"""
