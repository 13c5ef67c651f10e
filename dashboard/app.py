"""`streamlit run dashboard/app.py` from a checkout. The page itself is `reslab/dashboard/app.py`, inside the
package, so that an installed wheel serves the same app (`reslab dashboard`); this file runs it."""

import runpy

from reslab.dashboard import APP

runpy.run_path(str(APP), run_name="__main__")
