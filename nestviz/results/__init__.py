"""What the API returns: ``records`` (``ImageResult`` and its parts, their JSON; no torch) and ``display``
(``Result``, an ``ImageResult`` that draws and shows itself). Nothing is imported here."""
