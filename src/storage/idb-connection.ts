/**
 * One lazily opened IndexedDB connection that steps aside for other tabs: on `versionchange` (another tab
 * upgrades or deletes the database) or an unexpected close it is dropped, and the next use reopens it.
 */
export class IdbConnection {
  private dbp: Promise<IDBDatabase> | undefined;

  constructor(private readonly open: () => Promise<IDBDatabase>) {}

  get(): Promise<IDBDatabase> {
    if (!this.dbp) {
      const dbp = this.open().then((db) => {
        const drop = (): void => {
          db.close();
          if (this.dbp === dbp) this.dbp = undefined;
        };
        db.onversionchange = drop;
        db.onclose = drop;
        return db;
      });
      dbp.catch(() => {
        if (this.dbp === dbp) this.dbp = undefined;
      });
      this.dbp = dbp;
    }
    return this.dbp;
  }

  /** Forget the connection (it closed under us); the next get() reopens. */
  reset(): void {
    this.dbp = undefined;
  }

  /** Close now; the next get() reopens. */
  async close(): Promise<void> {
    const dbp = this.dbp;
    this.dbp = undefined;
    if (dbp) (await dbp.catch(() => null))?.close();
  }
}
