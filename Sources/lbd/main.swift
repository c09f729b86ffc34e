// Keep this file to one call: closures in top-level code are inferred @MainActor and trap when
// libevent calls them on a worker thread (notes/libevent-swift.md, pitfall 6).
LBD.main()
