"""The face gallery: search speed at scale, Milvus Lite, durability under SIGKILL, batch enrollment."""
