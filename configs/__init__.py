"""Shipped YAML configs, nameable without a path: ``pc3d fit -c meepo_demo.yaml``."""
