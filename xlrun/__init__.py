"""xlrun: declarative experiments for multilingual dense retrievers.

The pipeline is spec → runs → train → evaluate → store → report; each stage lives in
its own subpackage and passes small frozen values to the next.
"""

__version__ = "0.1.0"
