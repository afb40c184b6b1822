import { render } from "preact";
import { App } from "./app";
import { interceptLinks } from "./router";
import "./styles.css";

const root = document.getElementById("app");
if (root) {
  interceptLinks(document.body);
  render(<App />, root);
}
