import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatApp, AppState } from "../app/client";

/** The app state, re-rendering on every change. */
export function useAppState(app: ChatApp): AppState {
  const [state, setState] = useState(app.state);
  useEffect(() => {
    setState(app.state);
    return app.store.subscribe(() => setState(app.store.get()));
  }, [app]);
  return state;
}

/** The current `location.hash`. */
export function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash;
}

/** Whether a CSS media query matches, kept up to date. */
export function useMedia(query: string): boolean {
  const [m, setM] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const mq = window.matchMedia(query);
    const on = () => setM(mq.matches);
    mq.addEventListener("change", on);
    return () => mq.removeEventListener("change", on);
  }, [query]);
  return m;
}

/** Re-renders every `ms` while `active`. */
export function useTicker(active: boolean, ms = 1000): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setN((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [active, ms]);
  return n;
}

/** Whether the component is still mounted (for async results). */
export function useMounted() {
  const ref = useRef(true);
  useEffect(() => {
    ref.current = true;
    return () => {
      ref.current = false;
    };
  }, []);
  return ref;
}
