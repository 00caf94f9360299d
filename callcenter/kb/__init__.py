"""The province's shared knowledge base (issue 19).

* model.py    -- the article as a value: fields and bounds, statuses, roles, differences (pure)
* text.py     -- Chinese segmentation (jieba + our dictionary), synonyms, queries, snippets (pure)
* store.py    -- articles, versions, roles and the full-text index in SQL (blocking I/O)
* seed.py     -- a seed corpus of realistic (made-up) answers; data/queries.json labels queries
* evaluate.py -- recall@k and MRR on the labelled queries
"""
