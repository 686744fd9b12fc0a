"""digitkit core: the library that runs locally and, inlined by build.py, inside every Kaggle notebook.

Only the standard library and Kaggle's stock packages (torch, timm, numpy, pandas, scikit-learn, matplotlib, tqdm)
may be imported here, and nothing may read ``__file__``.
"""

import warnings as _warnings

# tqdm.auto (imported by timm's hub code too) warns once in a kernel without ipywidgets, then draws text; digitkit
# draws no bar there at all (core.progress), so the warning would only be noise in the saved notebook
_warnings.filterwarnings("ignore", message="IProgress not found")
