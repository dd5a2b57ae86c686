"""The RAW instructions, one module per kind (``base`` states what a kind holds).

``Mov`` (copy from an earlier column: an attention head), ``Aff`` (an
affine map within the column: the self head and the attention bias),
``Avg`` (the mean over columns 0..i: a head with zero scores),
``Mul`` (a matrix product within the column: GeLU products in the MLP) and
``Div`` (a division by the absolute value of a register: layer norm and a
GeLU bypass in the MLP). A new kind is a new module here.
"""

from .aff import Aff
from .avg import Avg
from .base import ATTENTION, KINDS, MLP, Instruction, from_data, to_data
from .div import Div, DivisionMechanism
from .mov import Mov
from .mul import Mul, ProductMechanism

__all__ = ["ATTENTION", "KINDS", "MLP", "Aff", "Avg", "Div", "DivisionMechanism", "Instruction", "Mov", "Mul",
           "ProductMechanism", "from_data", "to_data"]
