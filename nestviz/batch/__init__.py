"""Folder mode: find inputs (``discover``), record finished images (``manifest``), run them (``runner``),
and show them (``gallery``). Handed an object with the API's methods, never the model itself."""
