//! What goes into the Debian image, and how (pure): the files kdrill stages for it (its unit and
//! script, the initrd module list), the mmdebstrap command line and its hooks (in order: kdrill's
//! files, the operator's overlay, the kernel's own `.deb`, `kdump-config symlinks`, the sysctl
//! record kdump-config compares), the overlay's manifest and hash, the sysctls the overlay sets,
//! and the case's settings for kdrill's unit.

use std::collections::BTreeSet;
use std::path::Path;

use crate::host::process::shell_quote;
use crate::spec::debian::DebianRecipe;
use crate::spec::scenario::Scenario;

/// Files kdrill puts into the image root: (path, mode, contents).
pub fn staged_files(
    recipe: &DebianRecipe,
    unit: &[u8],
    script: &[u8],
) -> Vec<(String, u32, Vec<u8>)> {
    let modules: String = recipe
        .initrd_modules
        .iter()
        .map(|m| format!("{m}\n"))
        .collect();
    vec![
        ("usr/local/sbin/kdrill-guest".into(), 0o755, script.to_vec()),
        ("etc/systemd/system/kdrill-guest.service".into(), 0o644, unit.to_vec()),
        (
            // MODULES=list for both initrds: mkinitramfs cannot find the root device in a
            // chroot, so kdump-tools' MODULES=dep fails there.
            "etc/initramfs-tools/conf.d/kdrill".into(),
            0o644,
            b"# kdrill: the image is built in a chroot, where MODULES=dep cannot find the root device.\nMODULES=list\n".to_vec(),
        ),
        ("etc/initramfs-tools/modules".into(), 0o644, modules.into_bytes()),
    ]
}

/// The mmdebstrap arguments that build the image's root into `target`: `staged` is the folder of
/// [`staged_files`], `overlay` the operator's, `kernel_deb` the kernel entry's package.
pub fn mmdebstrap_args(
    recipe: &DebianRecipe,
    mirror: &str,
    staged: &Path,
    overlay: Option<&Path>,
    kernel_deb: &Path,
    release: &str,
    target: &Path,
) -> Vec<String> {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let packages: Vec<&str> = recipe
        .packages
        .iter()
        .chain(&recipe.extra_packages)
        .map(String::as_str)
        .collect();
    let mut args = vec![
        "--mode=root".to_string(),
        "--variant=apt".into(),
        format!("--include={}", packages.join(",")),
        format!("--customize-hook=sync-in {} /", q(staged)),
    ];
    if let Some(overlay) = overlay {
        // After kdrill's files: the operator's win where both set the same file.
        args.push(format!("--customize-hook=sync-in {} /", q(overlay)));
    }
    let release_word = shell_quote(release);
    args.extend([
        format!("--customize-hook=copy-in {} /tmp", q(kernel_deb)),
        format!(
            "--customize-hook=mv \"$1\"/tmp/{} \"$1\"/tmp/kernel.deb",
            shell_quote(
                &kernel_deb
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        ),
        // Installing the kernel runs /etc/kernel/postinst.d/kdump-tools: the capture initrd.
        "--customize-hook=chroot \"$1\" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/kernel.deb".into(),
        "--customize-hook=rm -f \"$1\"/tmp/kernel.deb".into(),
        format!("--customize-hook=chroot \"$1\" kdump-config symlinks {release_word}"),
        // kdump-config load deletes the capture initrd when /etc/kdump/sysctl.conf differs from
        // this record: made now, it matches.
        format!(
            "--customize-hook=cp \"$1\"/etc/kdump/sysctl.conf \"$1\"/var/lib/kdump/latest_sysctls-{release_word}"
        ),
        "--customize-hook=chroot \"$1\" systemctl enable kdrill-guest.service".into(),
        // Debian's kdump-tools writes dump.<stamp> mode 644 into a 755 /var/crash: any local user
        // could read the crashed kernel's memory. Closing the folder is the operator's fix, done
        // here as a careful operator would (an overlay's /etc/tmpfiles.d can say otherwise).
        "--customize-hook=chmod 0700 \"$1\"/var/crash".into(),
        // Nothing asks for a login here; the journal is kept across the three boots.
        "--customize-hook=mkdir -p \"$1\"/var/log/journal".into(),
        recipe.suite.clone(),
        target.display().to_string(),
        mirror.to_string(),
    ]);
    args
}

/// Every file under `dir` (relative path, mode, sha256 of its contents or link target), sorted:
/// what the image's cache key and `result.json` name the overlay by.
pub fn manifest_line(relative: &str, mode: u32, digest: &str) -> String {
    format!("{mode:o} {digest} {relative}\n")
}

/// The sysctl keys an overlay's `etc/sysctl.conf` and `etc/sysctl.d/*.conf` set: the operator's
/// choice, which a route's own sysctls do not override.
pub fn sysctl_keys(files: &[(String, String)]) -> BTreeSet<String> {
    files
        .iter()
        .filter(|(path, _)| {
            path == "etc/sysctl.conf"
                || (path.starts_with("etc/sysctl.d/") && path.ends_with(".conf"))
        })
        .flat_map(|(_, text)| text.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.trim().trim_start_matches('-').replace('/', "."))
        .collect()
}

/// The case's settings for kdrill's unit (`case.env` on the case disk): the route, the crasher's
/// word, the sysctls the route needs except those the operator's overlay sets; and the keys left
/// out (for `result.json`'s notes).
pub fn case_env(scenario: &Scenario, operator_sets: &BTreeSet<String>) -> (String, Vec<String>) {
    let mut kept = Vec::new();
    let mut left_out = Vec::new();
    for (key, value) in &scenario.sysctls {
        if operator_sets.contains(key) {
            left_out.push(key.clone());
        } else {
            kept.push(format!("{key}={value}"));
        }
    }
    let env = format!(
        "KDRILL_TRIGGER='{}'\nKDRILL_CRASHER='{}'\nKDRILL_SYSCTLS='{}'\n",
        scenario.trigger.guest_word(),
        scenario.crasher.clone().unwrap_or_default(),
        kept.join(" ")
    );
    (env, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hooks_put_the_operator_after_kdrill_and_the_kernel_last() {
        let recipe = crate::spec::debian::load(None).unwrap();
        let args = mmdebstrap_args(
            &recipe,
            "http://deb.debian.org/debian",
            Path::new("/c/staged"),
            Some(Path::new("/my site/overlay")),
            Path::new("/c/debs/linux-image_6.1/package.deb"),
            "6.1.0-47-amd64",
            Path::new("/c/root"),
        );
        let at = |needle: &str| {
            args.iter()
                .position(|a| a.contains(needle))
                .unwrap_or_else(|| panic!("no `{needle}` in {args:?}"))
        };
        assert!(args[2].starts_with("--include=systemd-sysv,udev,kdump-tools"));
        assert!(at("sync-in /c/staged /") < at("sync-in '/my site/overlay' /"));
        assert!(at("sync-in '/my site/overlay' /") < at("dpkg -i /tmp/kernel.deb"));
        assert!(at("dpkg -i") < at("kdump-config symlinks 6.1.0-47-amd64"));
        assert!(at("latest_sysctls-6.1.0-47-amd64") > at("kdump-config symlinks"));
        assert_eq!(
            &args[args.len() - 3..],
            ["bookworm", "/c/root", "http://deb.debian.org/debian"]
        );
    }

    #[test]
    fn the_operators_sysctls_are_theirs() {
        let files = vec![
            (
                "etc/sysctl.d/90-site.conf".to_string(),
                "# site\nkernel.sysrq = 0\n-kernel/panic_on_oops=1\n".to_string(),
            ),
            (
                "etc/default/kdump-tools".to_string(),
                "USE_KDUMP=1\n".to_string(),
            ),
        ];
        let keys = sysctl_keys(&files);
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            ["kernel.panic_on_oops", "kernel.sysrq"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysrq-serial.yaml");
        std::fs::write(
            &path,
            "id: sysrq-serial\ndescription: d\ntrigger: sysrq-serial\nsysctls:\n  kernel.sysrq: 1\n  kernel.panic: 5\nexpect:\n  log: [x]\n",
        )
        .unwrap();
        let scenario = crate::spec::scenario::from_file(&path).unwrap();
        let (env, left_out) = case_env(&scenario, &sysctl_keys(&files));
        assert!(env.contains("KDRILL_SYSCTLS='kernel.panic=5'\n"), "{env}");
        assert!(env.contains("KDRILL_TRIGGER='host'\n"), "{env}");
        assert_eq!(left_out, ["kernel.sysrq"]);
    }
}
