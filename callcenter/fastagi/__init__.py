"""Call control on the ACD: the FastAGI server (agi://HOST:4573/hotline), the
authenticated relay port the classic pyst2 scripts use, admission control and
callback origination.  Thin Twisted shells around callcenter.agi and
callcenter.callflow.
"""
