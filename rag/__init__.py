"""Knowledge: loading, chunking, embedding, the vector store, retrieval and ingestion.

Knows nothing of agents or HTTP.
"""
