"""Getting confirmed reports off the device: object stores, privacy blur, the uploader."""
