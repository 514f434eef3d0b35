"""Generic asyncio pieces, free of the engine's domain and of any database driver.

`tasks` owns background tasks, `batcher` buffers writes into batches, `listen` keeps a LISTEN
subscription alive, `clock` names the injected time source. The store and the stages build on them.
"""
