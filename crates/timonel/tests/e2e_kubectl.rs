//! End-to-end tests: the real `kubectl` v1.35 and `helm` v4 against `timonel server`.
//!
//! Every test body runs twice, against a server on SQLite (`sqlite::`) and one on etcd
//! (`etcd::`); each store has one server shared by its tests. Fetch the tools first with
//! `scripts/fetch-kube-tools.sh`. Run one store with `cargo test -p timonel --test e2e_kubectl sqlite::`.

#[allow(dead_code)]
mod e2e {
    pub mod apply;
    pub mod crd;
    pub mod create;
    pub mod delete;
    pub mod discovery;
    pub mod errors;
    pub mod explain;
    pub mod get;
    pub mod harness;
    pub mod helm;
    pub mod mutate;
    pub mod wait;
    pub mod watch;
}

/// Generates one `#[test]` per listed body in `mod sqlite` and again in `mod etcd`; each gets
/// a session (namespace and HOME) named after the test on that store's shared cluster.
macro_rules! on_every_store {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    let cluster = crate::e2e::harness::shared_cluster(crate::e2e::harness::Store::Sqlite);
                    crate::e2e::$module::$test(&cluster.session(stringify!($test)));
                }
            )*
        }
        mod etcd {
            $(
                #[test]
                fn $test() {
                    let cluster = crate::e2e::harness::shared_cluster(crate::e2e::harness::Store::Etcd);
                    crate::e2e::$module::$test(&cluster.session(stringify!($test)));
                }
            )*
        }
    };
}

on_every_store! {
    discovery::version_reports_the_server,
    discovery::api_resources_lists_builtin_kinds,
    discovery::api_versions_lists_groups,
    get::deployment_table_and_output_formats,
    get::selectors_sorting_labels_and_all_namespaces,
    watch::get_watch_streams_added_modified_deleted,
    watch::get_watch_on_one_object,
    create::generators_send_protobuf_bodies,
    apply::client_side_apply_three_way_merge,
    apply::server_side_apply_conflicts_and_force,
    mutate::diff_reports_changes_without_persisting,
    mutate::replace_and_optimistic_concurrency,
    mutate::patch_strategic_merge_and_json,
    mutate::label_annotate_and_scale,
    delete::delete_by_name_file_selector_and_all,
    delete::finalizer_holds_deletion,
    wait::wait_for_condition_jsonpath_and_delete,
    explain::explain_describe_and_auth,
    crd::custom_resources_schema_columns_and_scale,
    errors::errors_carry_upstream_reasons,
    helm::helm_install_upgrade_uninstall,
}
