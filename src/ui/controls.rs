//! The sidebar's controls: fields that check what is typed, the settings, the grid's choices.

use super::*;

#[component]
pub(super) fn Field(
    form: RwSignal<PageConfig>,
    key: &'static str,
    label: &'static str,
    title: &'static str,
    value: Signal<String>,
    #[prop(optional)] placeholder: &'static str,
) -> impl IntoView {
    let hidden = move || form.with(|c| c.hides(key) || (key.starts_with("eta_z") && c.hides("eta_z")));
    view! {
        <label class="field" title=title class:hidden=hidden>
            <span>{label}</span>
            <input
                type="text"
                inputmode="decimal"
                data-testid=key
                placeholder=placeholder
                prop:value=value
                on:change=move |ev| commit(form, key, &event_target_value(&ev))
            />
        </label>
    }
}

#[component]
pub(super) fn Controls(form: RwSignal<PageConfig>) -> impl IntoView {
    let text = |f: fn(&PageConfig) -> String| Signal::derive(move || form.with(f));
    let toggle_rule = move |rule: Rule, on: bool| {
        let mut rules = form.get_untracked().rules;
        if on && !rules.contains(&rule) {
            rules.push(rule);
        }
        if !on {
            rules.retain(|r| *r != rule);
        }
        let list: Vec<&str> = Rule::ALL.iter().filter(|r| rules.contains(r)).map(|r| r.name()).collect();
        commit(form, "rules", &list.join(","));
    };
    let hides = move |id: &'static str| move || form.with(|c| c.hides(id));
    view! {
        <aside class="controls" aria-label="settings" class:hidden=move || form.with(|c| c.hide.iter().any(|h| h == "controls"))>
            <label class="field stack" class:hidden=hides("preset")>
                <span>"preset"</span>
                // A preset replaces the networks: only a deliberate choice loads one (a click, or
                // Enter in the opened list), never an arrow key passing over the closed menu.
                <select
                    data-testid="preset"
                    on:keydown=move |ev: web_sys::KeyboardEvent| {
                        if matches!(ev.key().as_str(), "ArrowUp" | "ArrowDown" | "ArrowLeft" | "ArrowRight" | "Home" | "End" | "PageUp" | "PageDown") && !ev.alt_key() {
                            ev.prevent_default();
                        }
                    }
                    on:change=move |ev| commit(form, "preset", &event_target_value(&ev))
                >
                    <option value="" selected=move || form.with(|c| c.preset.is_none())>"— your own setup —"</option>
                    {Preset::all()
                        .into_iter()
                        .map(|p| {
                            let id = p.id();
                            view! { <option value=id.clone() selected=move || form.with(|c| c.preset == Some(p))>{p.title()}</option> }
                        })
                        .collect::<Vec<_>>()}
                </select>
            </label>
            <h2>"Network"</h2>
            <Field form key="depth" label="depth H" title="hidden layers, 1 to 256" value=text(|c| c.depth.to_string()) />
            <Field form key="width" label="width N" title="units per hidden layer, 16 to 1024" value=text(|c| c.width.to_string()) />
            <label class="field" class:hidden=hides("act")>
                <span>"activation φ"</span>
                <select data-testid="activation" on:change=move |ev| commit(form, "act", &event_target_value(&ev))>
                    {Activation::ALL
                        .iter()
                        .map(|a| {
                            let name = a.name();
                            view! { <option value=name selected=move || form.with(|c| c.act.name() == name)>{name}</option> }
                        })
                        .collect::<Vec<_>>()}
                </select>
            </label>
            <label class="check" class:hidden=hides("skips")>
                <input
                    type="checkbox"
                    data-testid="skips"
                    prop:checked=move || form.with(|c| c.skips)
                    on:change=move |ev| commit(form, "skips", if event_target_checked(&ev) { "1" } else { "0" })
                />
                "identity skips (residual)"
            </label>
            <h2 class:hidden=hides("rules")>"Rules"</h2>
            {Rule::ALL
                .iter()
                .map(|&rule| {
                    view! {
                        <label class="check" class:hidden=hides("rules")>
                            <input
                                type="checkbox"
                                data-testid=format!("rule-{}", rule.name())
                                prop:checked=move || form.with(|c| c.rules.contains(&rule))
                                on:change=move |ev| toggle_rule(rule, event_target_checked(&ev))
                            />
                            <span class="swatch" style=format!("background:{}", swatch(rule))></span>
                            {rule.label()}
                        </label>
                    }
                })
                .collect::<Vec<_>>()}
            <h2>"Rates (change live)"</h2>
            <Field form key="lr_mupc" label="η_w μPC" title="Adam learning rate of μPC" value=text(|c| c.lr_mupc.to_string()) />
            <Field form key="lr_sp" label="η_w standard PC" title="Adam learning rate of standard PC" value=text(|c| c.lr_sp.to_string()) />
            <Field form key="lr_bp" label="η_w BP" title="Adam learning rate of both backprop baselines" value=text(|c| c.lr_bp.to_string()) />
            <Field
                form
                key="eta_z_mupc"
                label="η_z μPC"
                title="inference rate of μPC; empty: 0.5"
                placeholder="0.5"
                value=text(|c| c.eta_z_mupc.map_or(String::new(), |v| v.to_string()))
            />
            <Field
                form
                key="eta_z_sp"
                label="η_z standard PC"
                title="inference rate of standard PC; empty: 0.1"
                placeholder="0.1"
                value=text(|c| c.eta_z_sp.map_or(String::new(), |v| v.to_string()))
            />
            <Field
                form
                key="T"
                label="inference steps T"
                title="inference steps per iteration; empty: T = H"
                placeholder="= H"
                value=text(|c| c.steps.map_or(String::new(), |v| v.to_string()))
            />
            <h2>"Data"</h2>
            <Field form key="batch" label="batch B" title="images per batch, 1 to 1024" value=text(|c| c.batch.to_string()) />
            <Field form key="seed" label="seed" title="weights and batch order; the same seed gives the same curves" value=text(|c| c.seed.to_string()) />
            <Field form key="eval_every" label="evaluate every" title="iterations between test-set evaluations" value=text(|c| c.eval_every.to_string()) />
        </aside>
    }
}

pub(super) fn swatch(rule: Rule) -> String {
    let c = crate::charts::rule_color(rule.name());
    format!("rgb({},{},{})", c.0, c.1, c.2)
}

/// A select's handler that sets part of the grid's choice from its value.
pub(super) fn choose(f: impl Fn(&mut lr_grid::GridChoice, &str) + 'static) -> impl Fn(web_sys::Event) + 'static {
    move |ev: web_sys::Event| {
        let v = event_target_value(&ev);
        runner::with(|r| f(&mut r.lr_choice, &v));
    }
}
