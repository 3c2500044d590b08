import { render } from "preact";
import { ChatApp } from "./app/client";
import { App } from "./ui/App";
import { go } from "./ui/route";
import "./styles.css";

const app = new ChatApp();
app.openConversation = (id) => go({ name: "channel", id });
app.boot();
render(<App app={app} />, document.getElementById("app")!);

// For debugging in the console.
(window as unknown as { chat: ChatApp }).chat = app;
