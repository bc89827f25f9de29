"""Open3D visualizer (interactive and headless)."""
