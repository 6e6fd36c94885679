"""Runnable demos (``python -m tfvideo.demo.<name>``)."""
