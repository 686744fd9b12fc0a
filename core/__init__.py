"""digitkit core: the library that runs locally and, inlined by build.py, inside every Kaggle notebook.

Only the standard library and Kaggle's stock packages (torch, timm, numpy, pandas, scikit-learn, matplotlib, tqdm)
may be imported here, and nothing may read ``__file__``.
"""
