"""keras-sanm."""
