// Pages are real paths (/keys, /balance); the gateway answers any page path with the app.
import { useEffect, useState } from "react";

export const PAGES = [
  { path: "/", label: "Remove background" },
  { path: "/video", label: "Video" },
  { path: "/balance", label: "Balance" },
  { path: "/usage", label: "Usage" },
  { path: "/keys", label: "API keys" },
] as const;

export type PagePath = (typeof PAGES)[number]["path"] | "/sign-in";

export function navigate(href: string): void {
  if (href === window.location.pathname + window.location.hash) return;
  window.history.pushState(null, "", href);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const changed = () => setPath(window.location.pathname);
    window.addEventListener("popstate", changed);
    return () => window.removeEventListener("popstate", changed);
  }, []);
  return path;
}
