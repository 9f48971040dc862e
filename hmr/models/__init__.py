"""hmr.models"""
