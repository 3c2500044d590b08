export type Route =
  | { name: "home" }
  | { name: "channel"; id: string }
  | { name: "browse" }
  | { name: "new" }
  | { name: "dm" };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#\/?/, "");
  const [head, ...rest] = h.split("/");
  if (head === "c" && rest[0]) return { name: "channel", id: decodeURIComponent(rest[0]) };
  if (head === "browse") return { name: "browse" };
  if (head === "new") return { name: "new" };
  if (head === "dm") return { name: "dm" };
  return { name: "home" };
}

export function href(r: Route): string {
  switch (r.name) {
    case "channel":
      return `#/c/${encodeURIComponent(r.id)}`;
    case "home":
      return "#/";
    default:
      return `#/${r.name}`;
  }
}

export function go(r: Route): void {
  const h = href(r);
  if (location.hash !== h) location.hash = h;
}
