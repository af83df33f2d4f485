//! `testbed demo`: a narrated walk through the product on the local stack, printing the
//! plugin's own output at each step; it fails unless every step did what it should.

use std::process::Command;
use std::time::{Duration, Instant};

use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, JobType, Phase};
use kube::api::{Api, PostParams};

use crate::aap_sim::Role;
use crate::stack::{Progress, Stack};

const WAIT: Duration = Duration::from_secs(90);

struct Demo<'a> {
    stack: &'a Stack,
    api: Api<ComputeInstance>,
    ns: String,
    progress: &'a Progress,
    results: Vec<(String, Result<(), String>)>,
}

/// Runs the demo on a started stack; returns whether every step passed.
pub async fn run(stack: &Stack, progress: &Progress) -> anyhow::Result<bool> {
    let ns = stack.options.namespace.clone();
    let mut demo = Demo {
        stack,
        api: Api::namespaced(stack.client.clone(), &ns),
        ns,
        progress,
        results: Vec::new(),
    };
    demo.steps().await?;
    println!("\n== summary");
    let mut ok = true;
    for (step, result) in &demo.results {
        match result {
            Ok(()) => println!("  ok    {step}"),
            Err(e) => {
                ok = false;
                println!("  FAIL  {step}: {e}");
            }
        }
    }
    Ok(ok)
}

impl Demo<'_> {
    fn narrate(&self, text: &str) {
        println!("\n== {text}");
    }

    fn check(&mut self, step: &str, result: Result<(), String>) {
        if let Err(e) = &result {
            self.progress.say(format!("step failed: {step}: {e}"));
        }
        self.results.push((step.to_string(), result));
    }

    /// Runs `kubectl cloudkit ARGS -n NS` through the real kubectl and prints its output.
    fn plugin(&self, args: &[&str]) -> (bool, String) {
        println!("$ kubectl cloudkit {} -n {}", args.join(" "), self.ns);
        let path = format!(
            "{}:{}",
            self.stack.plugin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("kubectl")
            .arg("cloudkit")
            .args(args)
            .args(["-n", &self.ns])
            .env("KUBECONFIG", self.stack.cp.kubeconfig_path())
            .env("PATH", path)
            .output();
        match out {
            Ok(o) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                print!("{text}");
                (o.status.success(), text)
            }
            Err(e) => {
                println!("cannot run kubectl: {e}");
                (false, e.to_string())
            }
        }
    }

    async fn create(&self, name: &str) -> anyhow::Result<()> {
        let ci = ComputeInstance::new(
            name,
            ComputeInstanceSpec {
                template_id: "osac.templates.ocp_small".into(),
                template_parameters: Some(r#"{"cpus": 2, "memory": "4Gi"}"#.into()),
                ..Default::default()
            },
        );
        self.api.create(&PostParams::default(), &ci).await?;
        println!("created computeinstance {}/{name}", self.ns);
        Ok(())
    }

    async fn wait(
        &self,
        name: &str,
        check: impl Fn(Option<&ComputeInstance>) -> bool,
    ) -> Result<Option<ComputeInstance>, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let ci = self.api.get_opt(name).await.map_err(|e| e.to_string())?;
            if check(ci.as_ref()) {
                return Ok(ci);
            }
            if Instant::now() > deadline {
                return Err(format!("timed out after {WAIT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn steps(&mut self) -> anyhow::Result<()> {
        let aap = self.stack.aap.as_ref();
        // Two instances whose provisioning takes long, to cancel and to delete mid-way.
        for name in ["vm-cancel", "vm-delete"] {
            if let Some(sim) = aap {
                let slow = crate::bed::quick_job()
                    .hold_running()
                    .cancel_delay(Duration::from_secs(2));
                sim.set_instance_behavior(&self.ns, name, Some(Role::Provision), slow);
            }
        }
        self.narrate(
            "1. Three ComputeInstances are created; the runner launches a provision job for each",
        );
        for name in ["vm-web", "vm-cancel", "vm-delete"] {
            self.create(name).await?;
        }
        let running = self
            .wait("vm-web", |ci| phase(ci) == Some(Phase::Running))
            .await;
        self.plugin(&["list"]);
        self.check("vm-web provisioned and Running", running.map(|_| ()));
        self.plugin(&["jobs", "vm-web"]);

        self.narrate("2. Restart vm-web: the runner deletes its VMI and KubeVirt starts a new one");
        let (ok, _) = self.plugin(&["restart", "vm-web", "--wait", "--timeout", "60s"]);
        let restarted = self
            .wait("vm-web", |ci| {
                ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
                    .is_some()
            })
            .await;
        self.check(
            "restart --wait succeeded and lastRestartedAt is set",
            if ok {
                restarted.map(|_| ())
            } else {
                Err("the plugin exited non-zero".into())
            },
        );

        self.narrate("3. Cancel vm-cancel while it provisions: the job is canceled in AAP, the instance stays");
        let provisioning = self
            .wait("vm-cancel", |ci| {
                latest(ci, JobType::Provision).is_some_and(|j| j.job_id.is_some())
            })
            .await;
        self.check(
            "vm-cancel has a running provision job",
            provisioning.map(|_| ()),
        );
        let (ok, _) = self.plugin(&["cancel", "vm-cancel", "--wait"]);
        let canceled = self
            .wait("vm-cancel", |ci| phase(ci) == Some(Phase::Canceled))
            .await;
        self.plugin(&["jobs", "vm-cancel"]);
        self.check(
            "cancel --wait: job Canceled, phase Canceled, instance kept",
            match (ok, canceled) {
                (true, Ok(Some(_))) => Ok(()),
                (false, _) => Err("the plugin exited non-zero".into()),
                (_, Err(e)) => Err(e),
                (_, Ok(None)) => Err("the instance disappeared".into()),
            },
        );

        self.narrate(
            "4. Delete vm-delete while it provisions: cancel first, then exactly one deprovision",
        );
        self.wait("vm-delete", |ci| {
            latest(ci, JobType::Provision).is_some_and(|j| j.job_id.is_some())
        })
        .await
        .map_err(anyhow::Error::msg)?;
        self.api.delete("vm-delete", &Default::default()).await?;
        println!(
            "$ kubectl delete computeinstance vm-delete -n {} --wait=false",
            self.ns
        );
        let shown = self
            .wait("vm-delete", |ci| {
                ci.is_none() || latest(ci, JobType::Deprovision).is_some()
            })
            .await;
        if matches!(shown, Ok(Some(_))) {
            self.plugin(&["jobs", "vm-delete"]);
        }
        let gone = self.wait("vm-delete", |ci| ci.is_none()).await;
        let order = match aap {
            Some(sim) => {
                let jobs = sim.jobs_of(&self.ns, "vm-delete");
                let p: Vec<_> = jobs
                    .iter()
                    .filter(|j| j.role == Some(Role::Provision))
                    .collect();
                let d: Vec<_> = jobs
                    .iter()
                    .filter(|j| j.role == Some(Role::Deprovision))
                    .collect();
                if d.len() != 1 {
                    Err(format!("{} deprovision jobs in AAP, expected 1", d.len()))
                } else if p
                    .iter()
                    .any(|p| p.finished.is_none_or(|f| f > d[0].created))
                {
                    Err("a deprovision job started before the provision job ended".into())
                } else if sim.overlap().is_some() {
                    Err("provision and deprovision overlapped".into())
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        };
        println!(
            "vm-delete is gone; AAP saw the provision canceled before the single deprovision job"
        );
        self.check(
            "delete during provision: canceled first, one deprovision, resource gone",
            gone.map(|_| ()).and(order),
        );

        self.narrate("5. What a person sees for one instance");
        let (ok, _) = self.plugin(&["describe", "vm-web"]);
        self.check(
            "describe vm-web",
            if ok {
                Ok(())
            } else {
                Err("the plugin exited non-zero".into())
            },
        );
        let (ok, _) = self.plugin(&["stats"]);
        self.check(
            "stats",
            if ok {
                Ok(())
            } else {
                Err("the plugin exited non-zero".into())
            },
        );
        Ok(())
    }
}

fn phase(ci: Option<&ComputeInstance>) -> Option<Phase> {
    ci?.status.as_ref()?.phase
}

fn latest(ci: Option<&ComputeInstance>, t: JobType) -> Option<cloudkit_shared::JobEntry> {
    cloudkit_shared::jobs::latest_of_type(&ci?.status.as_ref()?.jobs, t).cloned()
}
