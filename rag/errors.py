"""What can go wrong when retrieving knowledge.

RetrievalError
 ├── EmbeddingError   the embedding model could not be loaded
 └── StoreError       the vector store could not be read or written
"""


class RetrievalError(Exception):
    """No passages could be retrieved."""


class EmbeddingError(RetrievalError):
    """The embedding model could not be loaded or run."""


class StoreError(RetrievalError):
    """The vector store could not be read or written."""
