"""Paper models built from tfvideo layers (import only from ``ops``, ``losses``, ``layers``)."""
