"""The USB webcam side: the configfs gadget, UVC requests, and the stream to the host."""
