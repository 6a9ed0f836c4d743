"""Commands of the ``bitnet`` CLI, one module each."""
