"""Render: cameras, canonical views, rasterisation and shading in pure PyTorch."""
