"""`view NAME { expr EXPRESSION }`: once per block; expressions compiled at setup."""

from __future__ import annotations

from pycoredns.plugin import ConfigError, Controller

from .expr import ExprError, compile_expr
from .handler import FUNCTIONS, View


def setup(c: Controller) -> None:
    view: View | None = None
    for _ in c.occurrences(once=True):
        args = c.remaining_args()
        if len(args) != 1:
            raise c.arg_err()
        view = View(args[0], [], c.block.extra)
        while c.next_block():
            if c.val() != "expr":
                raise c.errf("unknown property '%s'", c.val())
            text = " ".join(c.remaining_args())
            try:
                view.programs.append(compile_expr(text, FUNCTIONS))
            except ExprError as e:
                raise ConfigError(f"{e}") from None
    if view is None:
        return
    c.block.extra["view"] = view  # the server's routing and the overlap check read it
    c.add_handler(view)
