"""metamed: meta-learning for clinical models.

Meta-train on many related clinical tasks (hospitals, conditions, patients, assays)
and adapt to a new one from a handful of labelled examples.
"""

from metamed import _gym
from metamed.errors import MetamedError

__version__ = "0.1.0"

# gymnasium.make("metamed/GlucoseDosing-v0") works after `import metamed`, which stays
# cheap: the environment is registered when Gymnasium itself is imported
_gym.install()

__all__ = ["MetamedError", "__version__"]
