"""Building blocks of the Pointformer backbone (attention, LT, GT, LGT, set abstraction, FP)."""

from .attention import (
    FeedForward,
    MultiHeadAttention,
    PositionEncoding,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)
from .block import PointformerBlock
from .feature_propagation import FeaturePropagation, mlp
from .global_transformer import GlobalTransformer, LocalGlobalTransformer
from .local_transformer import LocalTransformer
from .set_abstraction import SetAbstraction

__all__ = [
    "FeaturePropagation",
    "FeedForward",
    "GlobalTransformer",
    "LocalGlobalTransformer",
    "LocalTransformer",
    "MultiHeadAttention",
    "PointformerBlock",
    "PositionEncoding",
    "SetAbstraction",
    "TransformerDecoderLayer",
    "TransformerEncoderLayer",
    "mlp",
]
