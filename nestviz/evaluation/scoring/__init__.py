"""Pure metric functions for ``nestviz metrics``: arrays in, numbers out, no model and no I/O.

- ``nestviz.evaluation.scoring.localization``: box IoU, boxes from thresholded score maps, MaxBoxAcc (V1/V2,
  Choe et al. CVPR 2020), GT-known localization, box-covers-view, pointing game (Zhang et al.
  ECCV 2016) and the centred-box baseline map.
- ``nestviz.evaluation.scoring.faithfulness``: deletion/insertion curves and their AUC (Petsiuk et al., RISE,
  BMVC 2018), pixel orders, the blur substrate, and GradCAT path agreement with occlusion.
- ``nestviz.evaluation.scoring.sanity``: Spearman rank correlation for the cascading-randomisation check
  (Adebayo et al., NeurIPS 2018).

Box convention everywhere: ``[x0, y0, x1, y1]`` in float pixels with exclusive ends, so a box's
area is ``(x1 - x0) * (y1 - y0)`` and pixel ``(i, j)`` (column, row) is the box ``[i, j, i+1, j+1]``.
Box files are read by ``nestviz.evaluation.boxes``. Nothing is re-exported here so importing stays cheap.
"""
