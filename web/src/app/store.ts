// A tiny observable store: one immutable state object, replaced on every change.

export type Listener = () => void;

export class Store<S extends object> {
  private listeners = new Set<Listener>();
  private scheduled = false;

  constructor(private state: S) {}

  get(): S {
    return this.state;
  }

  /** Replaces part of the state; listeners run once per microtask however many updates came. */
  update(patch: Partial<S> | ((s: S) => Partial<S>)): void {
    const p = typeof patch === "function" ? patch(this.state) : patch;
    this.state = { ...this.state, ...p };
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        for (const l of this.listeners) l();
      });
    }
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
