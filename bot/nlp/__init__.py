"""Natural-language reading of chat messages.

* ``bot.nlp.text``: ``tokens(text)``, ``warm_up()`` (jieba with the domain dictionary)
* ``bot.nlp.classify``: ``classify(text) -> Reading``

Nothing is re-exported here on purpose: a ``classify`` function in this namespace would shadow
the ``bot.nlp.classify`` module (``import bot.nlp.classify as m`` and ``mock.patch`` would
then reach the function).
"""
