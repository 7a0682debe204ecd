"""Communication graphs: topologies, the weighted Laplacian and its spectral facts.

`make_graph` builds a connected, undirected, weighted `Graph` of one of `GRAPH_KINDS`
(SPEC section 1). A `Graph` stores each undirected edge once (``i < j``, sorted) and
derives everything else from the edge list: the sparse CSR Laplacian, degrees, neighbour
lists and the eigenvalues ``lambda_2`` (algebraic connectivity) and ``lambda_max``. No
dense ``n x n`` array is formed unless ``n <= 2000``.
"""

from __future__ import annotations

from ._validate import _check_connected as _check_connected
from ._validate import _check_n as _check_n
from ._validate import _check_nonneg_int as _check_nonneg_int
from ._validate import _check_options_belong as _check_options_belong
from ._validate import _check_seed as _check_seed
from ._validate import _check_weight_values as _check_weight_values
from ._validate import _scalar_weight as _scalar_weight
from .graph import _DENSE_MAX_N as _DENSE_MAX_N
from .graph import Graph
from .spectrum import _sparse_lambda_2 as _sparse_lambda_2
from .spectrum import _sparse_lambda_max as _sparse_lambda_max
from .spectrum import _start_vector as _start_vector
from .topologies import _MAX_REDRAWS as _MAX_REDRAWS
from .topologies import GRAPH_KINDS, make_graph
from .topologies import _canonical as _canonical
from .topologies import _erdos_renyi_edges as _erdos_renyi_edges
from .topologies import _explicit_edges as _explicit_edges
from .topologies import _geometric_edges as _geometric_edges
from .topologies import _grid_edges as _grid_edges
from .topologies import _is_connected as _is_connected
from .topologies import _pair_from_index as _pair_from_index
from .topologies import _random_new_edges as _random_new_edges
from .topologies import _ring_edges as _ring_edges
from .topologies import _sorted_unique as _sorted_unique

__all__ = ["GRAPH_KINDS", "Graph", "make_graph"]
