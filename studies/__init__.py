"""The paper's ablations, one file each: run one with `python studies/NAME.py` (in a checkout, or through
`ray submit`) or, from an installed wheel, `reslab study run NAME`. The wheel carries this folder as
`reslab.studies` (platform/reslab/studies links here), so both run the same definitions.

A study file defines `STUDY` (or `STUDIES`, the first one the default, when it offers one per dataset) and
ends with `sys.exit(main(...))` under `if __name__ == "__main__":`.
"""
