"""Generic asyncio pieces, free of the engine's domain and of any database driver.

`tasks` owns background tasks, `batcher` buffers writes into batches, `clock` names the injected
time source. The store and the stages build on them.
"""
