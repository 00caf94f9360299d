"""Work orders (工单) sent straight to the responsible unit (一单直达), with deadlines and supervision (督办).

Pure core: :mod:`states` (the order's state table), :mod:`calendar` (working days and hours),
:mod:`rules` (dispatch and deadline policy, from config), :mod:`book` (the order book: commands in,
events out, reminders and escalations due by an injected time), :mod:`similar` (repeated requests).
docs/orders.md describes the whole flow.
"""
