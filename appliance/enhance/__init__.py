"""Super-resolution: the project's x2 network on the frame, the faces, or the zoom."""
