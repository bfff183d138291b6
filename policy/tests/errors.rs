//! Invalid policies are refused with the line and column of the problem.

use trellis_policy::{GrantError, Policy, PolicyError, Position};

fn pos(line: u64, column: u64) -> Option<Position> {
    Some(Position { line, column })
}

fn err(yaml: &str) -> PolicyError {
    match Policy::parse(yaml) {
        Ok(_) => panic!("accepted invalid policy:\n{yaml}"),
        Err(e) => e,
    }
}

#[test]
fn yaml_syntax_error_has_position() {
    let yaml = "\
experiment:
  public:
    read: [Any.Any
  private:
    read: [Project.Member]
";
    let e = err(yaml);
    assert!(matches!(e, PolicyError::Yaml { .. }), "{e:?}");
    // The unterminated flow sequence runs into the `private:` mapping key on line 4.
    assert_eq!(e.position(), pos(4, 10), "{e}");
    assert!(e.to_string().starts_with("line 4 column 10: "), "{e}");

    let e = err("experiment:\n\tpublic: {}\n");
    assert_eq!(e.position(), pos(2, 2), "{e}");
    assert!(e.to_string().contains("tab"), "{e}");
}

#[test]
fn unknown_role_points_at_the_grant() {
    let yaml = "\
# comment
experiment:
  public:
    read:   [Any.Any]
    update: [Experiment.Maintainer, Project.Owner]
";
    let e = err(yaml);
    assert_eq!(e.position(), pos(5, 37), "{e}");
    let PolicyError::Grant { error, .. } = &e else { panic!("{e:?}") };
    assert!(matches!(error, GrantError::UnknownRole { .. }), "{error:?}");
    assert_eq!(
        e.to_string(),
        "line 5 column 37: unknown role \"Owner\" (expected one of Any, Self, Member, \
         Maintainer, Creator) in grant \"Project.Owner\""
    );

    // Block-style list, quoted scalar.
    let yaml = "project:\n  private:\n    read:\n      - Project.Member\n      - \"Projct.Member\"\n";
    let e = err(yaml);
    assert_eq!(e.position(), pos(5, 9), "{e}");
    assert!(e.to_string().contains("unknown scope \"Projct\""), "{e}");
}

#[test]
fn misplaced_self_and_bad_shape() {
    let e = err("user:\n  public:\n    update: [Project.Self]\n");
    assert_eq!(e.position(), pos(3, 14), "{e}");
    assert!(e.to_string().contains("User.Self"), "{e}");
    let e = err("user:\n  public:\n    update: [Self]\n");
    assert_eq!(e.position(), pos(3, 14), "{e}");
    assert!(e.to_string().contains("Scope.Role"), "{e}");
}

#[test]
fn unknown_keys_are_errors_with_position() {
    // Unknown entity.
    let e = err("experiment:\n  public: {read: [Any.Any]}\nexperiments:\n  public: {}\n");
    assert_eq!(e.position(), pos(3, 1), "{e}");
    assert!(e.to_string().contains("unknown field `experiments`"), "{e}");
    // Unknown access mode.
    let e = err("experiment:\n  publc:\n    read: [Any.Any]\n");
    assert_eq!(e.position(), pos(2, 3), "{e}");
    assert!(e.to_string().contains("publc"), "{e}");
    // Unknown operation.
    let e = err("experiment:\n  public:\n    raed: [Any.Any]\n");
    assert_eq!(e.position(), pos(3, 5), "{e}");
    assert!(e.to_string().contains("raed"), "{e}");
}

#[test]
fn shape_errors() {
    // Duplicate key: the second would silently win otherwise.
    let e = err("experiment:\n  public:\n    read: [Any.Any]\n    read: []\n");
    assert_eq!(e.position(), pos(4, 5), "{e}");
    assert!(e.to_string().contains("duplicate"), "{e}");
    // A scalar where a list belongs.
    let e = err("experiment:\n  public:\n    read: Any.Any\n");
    assert_eq!(e.position(), pos(3, 11), "{e}");
    // A document that is not a mapping.
    assert!(matches!(err("just text\n"), PolicyError::Yaml { .. }));
}

#[test]
fn empty_policy_is_refused() {
    assert!(matches!(err(""), PolicyError::Empty));
    assert!(matches!(err("# nothing but comments\n"), PolicyError::Empty));
}
