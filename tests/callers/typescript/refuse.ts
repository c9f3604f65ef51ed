// Must not compile: math.add takes numbers (tests/callers/test_typescript.py checks that tsc refuses it).
import { Client } from "../generated/index";

void new Client("redis://127.0.0.1:6379/0").mathAdd("a", 7);
